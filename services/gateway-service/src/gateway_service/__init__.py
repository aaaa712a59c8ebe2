"""gateway-service: edXML over HTTP for the e-office software agencies already run
(docs/edxml.md, "The HTTP gateway")."""
