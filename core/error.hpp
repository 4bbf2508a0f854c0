#pragma once
// slitstep/core: error and status types shared by every module.
//
// Two kinds of failure exist in slitstep:
//  * Bad input (a file, a config key, a command-line value): I/O and parsing code throws
//    `InputError`, whose message is one line naming the file / key / value and the rule broken.
//    The `slitstep` program prints it and exits with code 2.
//  * Numerical failure inside a kernel: kernels never throw for that, never print and never
//    exit; they return a summary struct carrying a `Status`.
// `InvalidOptions` is thrown by Options::validate() (a programming or configuration error that
// names the field, the value and the rule).
#include <stdexcept>
#include <string>

namespace slitstep {

/// Bad user input: unreadable/invalid file, bad config key or value. Message is one line.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An options struct failed validate(): message names field, value and rule.
class InvalidOptions : public InputError {
 public:
  using InputError::InputError;
};

/// Outcome of a numerical routine.
enum class StatusCode {
  kOk = 0,
  kOutOfRange,     // input outside the validity range of a formula (no silent extrapolation)
  kInvalidInput,   // NaN / inf / impossible value
  kNotConverged,
  kFailed,
};

struct Status {
  StatusCode code = StatusCode::kOk;
  std::string message;  // empty when ok; otherwise one line saying what and why
  bool ok() const { return code == StatusCode::kOk; }
  static Status Ok() { return {}; }
  static Status Error(StatusCode c, std::string msg) { return {c, std::move(msg)}; }
};

/// Formats a double the way error messages print values (shortest round-trip form).
std::string format_value(double v);

}  // namespace slitstep
