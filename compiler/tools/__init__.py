"""The quantir-opt command and the error reporting every quantir command shares."""
