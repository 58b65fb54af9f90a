//! Input and output mapping (filled in next).
