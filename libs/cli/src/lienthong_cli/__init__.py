"""The ``lienthong`` command: the platform's gRPC APIs for province IT and agency developers.

    lienthong --unit 000.00.00.H23 units list --output json
    lienthong report --period 2026-11 --xlsx bao-cao.xlsx --pdf bao-cao.pdf

Modules: app (the commands), config (named profiles), connection (endpoints, TLS, identity),
errors (gRPC status to exit code and readable details), output (tables, JSON), units_file
(registry files), report_model (the report's figures) and report_document (XLSX, PDF).
"""
