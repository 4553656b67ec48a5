"""The command line: Click commands over the library. No protocol logic here."""
