//! Harness for the integration tests: start a server on `127.0.0.1:0`, talk BOB to it.
