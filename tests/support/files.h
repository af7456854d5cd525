// Plain POSIX file helpers for the tests. Not std::filesystem: PyTorch's own libtorch.so exports
// std::filesystem symbols that interpose on the program's (seen with torch 2.11: remove_all jumped
// to a null address), so tests linked against such a libtorch must not call it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace voxcpm::test {

bool path_exists(const std::string& path);
uint64_t file_size(const std::string& path);
// Copies a regular file; the copy is owner read/write (the fixtures are read-only).
void copy_file(const std::string& from, const std::string& to);
// The entry names of a directory (sorted, without . and ..).
std::vector<std::string> list_dir(const std::string& dir);
// rm -rf: quietly does nothing for a missing path.
void remove_tree(const std::string& path);

}  // namespace voxcpm::test
