"""Local tooling for `make up` and the tests: the embedded servers and the supervisor. Not shipped."""
