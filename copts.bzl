"""Compiler flags for dst's own code (the same as CMakeLists.txt's)."""
DST_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    '-DDST_VERSION=\\"0.1.0\\"',
]
