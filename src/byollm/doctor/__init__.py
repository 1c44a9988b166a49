"""The configuration doctor: finds each misconfiguration the product's troubleshooting list names.

``service.Doctor`` runs the checks (``report.Check`` in a ``report.DoctorReport``); ``checks`` holds the pure
judgements shared by the server and the CLI; ``aws`` reads IAM and Bedrock with an admin's own credentials.
"""
