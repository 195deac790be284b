//! I2P base64 (`A-Z a-z 0-9 - ~`, `=` padding) and lower-case unpadded base32.
