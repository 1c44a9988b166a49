"""The configuration doctor: finds each misconfiguration the product's troubleshooting list names."""
