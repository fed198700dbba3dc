// Small files that must never be seen half-written (config.json, index files, trainer state): written to
// a temporary name beside the target, fsynced, and renamed over it.
#pragma once

#include <string>
#include <string_view>

namespace tsp {

// Replaces `path` with `text` atomically; throws tsp::Error naming the file on failure (the temporary file
// is removed, an existing `path` is left as it was).
void write_file_atomic(const std::string& path, std::string_view text);

// fsync of a directory, so that renames inside it survive a crash; failures are ignored (the files are
// complete either way).
void sync_directory(const std::string& dir);

}  // namespace tsp
