// Boost.URL, compiled into this target: Debian ships its headers but no
// library for it, and it is meant to be built this way (header-only mode).
#include <boost/url/src.hpp>  // IWYU pragma: keep
