// The one exception type the engine throws: bad files, bad input, cancelled requests.
#pragma once

#include <stdexcept>
#include <string>

namespace voxcpm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by a request that was cancelled from another thread.
class Cancelled : public Error {
 public:
  Cancelled() : Error("generation cancelled") {}
};

}  // namespace voxcpm
