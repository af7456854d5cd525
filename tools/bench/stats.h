// Summary statistics of repeated measurements (sample stdev, n-1).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace voxcpm::bench {

struct Summary {
  int n = 0;
  double mean = 0, stdev = 0, min = 0, max = 0, median = 0;
};

inline Summary summarize(std::vector<double> v) {
  Summary s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  const size_t h = v.size() / 2;
  s.median = v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stdev = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}

}  // namespace voxcpm::bench
