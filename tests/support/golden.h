// Test helpers: paths of the reference material and golden cases of the official code.
#pragma once

#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "voxcpm/config.h"
#include "voxcpm/error.h"
#include "voxcpm/generator.h"
#include "voxcpm/tensor_file.h"
#include "voxcpm/weights.h"

namespace voxcpm::test {

// ../shared/fixtures (meson option fixtures_dir). Fails the calling test if missing.
std::string fixtures_dir();
// ../shared/models (meson option reference_models_dir). Fails the calling test if missing.
std::string reference_models_dir();
// The build root (tools are found below it) and a fresh temporary directory.
std::string build_root();
std::string make_temp_dir();

// fixtures/golden-<version>/<name>.{json,safetensors}
struct Golden {
  nlohmann::json meta;
  TensorMap tensors;
  const at::Tensor& operator[](const std::string& name) const;
};
Golden load_golden(const std::string& version, const std::string& name);
// fixtures/tiny-<version>
std::string tiny_model_dir(const std::string& version);

double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

// The config and LM weights of a tiny fixture model (for module-level tests).
struct TinyParts {
  ModelConfig cfg;
  Weights weights;
};
TinyParts load_tiny_parts(const std::string& version);

// The generation options a golden e2e case was made with (model-level API: no §5.1 rules),
// including its prompt/reference WAV paths.
GenerateOptions golden_options(const Golden& g);

// Runs f and expects a voxcpm::Error whose message contains `needle`.
template <class F>
void expect_error_containing(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected voxcpm::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace voxcpm::test

// Compares shapes exactly and values within `tol` (max abs diff), printing the diff.
#define EXPECT_CLOSE(actual, expected, tol)                                                         \
  do {                                                                                              \
    at::Tensor a_ = (actual), e_ = (expected);                                                      \
    ASSERT_EQ(a_.sizes(), e_.sizes()) << #actual " vs " #expected;                                  \
    double d_ = voxcpm::test::max_abs_diff(a_, e_);                                                 \
    EXPECT_LE(d_, (tol)) << #actual " vs " #expected " max abs diff " << d_;                        \
  } while (0)
