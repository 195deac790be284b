//! One integration-test binary; scenario modules are added as the server grows.
