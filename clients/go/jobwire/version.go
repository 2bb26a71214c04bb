package jobwire

// Version is the jobwire release this SDK belongs to (the repository's
// VERSION file; CTest's version_test checks that they agree).
const Version = "0.1.0"
