"""The PostgreSQL side: the embedded server and `orderdb migrate`."""
