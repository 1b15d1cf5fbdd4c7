"""Remote execution: the SSH runner, and pure K3s command builders and parsers."""
