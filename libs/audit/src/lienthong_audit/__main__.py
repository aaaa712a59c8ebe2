import sys

from lienthong_audit.verify import main

sys.exit(main())
