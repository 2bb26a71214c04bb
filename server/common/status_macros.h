// Status propagation macros for absl::Status / absl::StatusOr.
//
// Abseil 20220623 ships neither RETURN_IF_ERROR nor ASSIGN_OR_RETURN; these two
// stand in for them. When a later Abseil provides its own, only this file
// changes.
#ifndef JOBWIRE_SERVER_COMMON_STATUS_MACROS_H_
#define JOBWIRE_SERVER_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the current function
// if it is not OK.
#define JW_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status jw_status_ = (expr);      \
    if (!jw_status_.ok()) return jw_status_; \
  } while (false)

#define JW_STATUS_CONCAT_INNER_(a, b) a##b
#define JW_STATUS_CONCAT_(a, b) JW_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, else
// moves the value into `lhs` (a declaration such as `auto x` or an lvalue).
#define JW_ASSIGN_OR_RETURN(lhs, rexpr)                                     \
  JW_ASSIGN_OR_RETURN_IMPL_(JW_STATUS_CONCAT_(jw_statusor_, __LINE__), lhs, \
                            rexpr)

#define JW_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)    \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // JOBWIRE_SERVER_COMMON_STATUS_MACROS_H_
