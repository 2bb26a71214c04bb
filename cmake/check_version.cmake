# Fails unless every package of the release states VERSION's number:
#   cmake -DROOT=<repository> -P check_version.cmake
# (the CTest test version_test). To release a new version, change VERSION
# and the files listed here.
cmake_minimum_required(VERSION 3.25)

file(STRINGS "${ROOT}/VERSION" version LIMIT_COUNT 1)
set(checks
  "clients/python/pyproject.toml|version = \"${version}\""
  "clients/python/jobwire/__init__.py|__version__ = \"${version}\""
  "clients/typescript/package.json|\"version\": \"${version}\""
  "clients/go/jobwire/version.go|const Version = \"${version}\"")
set(bad "")
foreach(check IN LISTS checks)
  string(REPLACE "|" ";" parts "${check}")
  list(GET parts 0 file)
  list(GET parts 1 want)
  file(READ "${ROOT}/${file}" text)
  string(FIND "${text}" "${want}" at)
  if(at EQUAL -1)
    string(APPEND bad "  ${file}: no '${want}'\n")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "VERSION is ${version}, but:\n${bad}")
endif()
message(STATUS "every package states version ${version}")
