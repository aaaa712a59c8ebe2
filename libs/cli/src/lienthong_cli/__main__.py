from lienthong_cli.app import main

main()
