//! Claims of the paper as executable checks.
