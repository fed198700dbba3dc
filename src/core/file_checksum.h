// Size and CRC-32 (zlib's crc32, the checksum of gzip and PNG) of a file, read in 1 MiB blocks. Used for the
// checkpoint manifest and to recognise a training data file on resume.
#pragma once

#include <cstdint>
#include <string>

namespace tsp {

struct FileDigest {
  uint64_t size = 0;
  uint32_t crc32 = 0;
};

// Throws tsp::Error naming the file when it cannot be read. With `sync`, the file's data is also flushed to
// the storage device (fsync) before returning, so that a checkpoint listed in a manifest survives a crash of
// the node, not only of the process.
FileDigest file_digest(const std::string& path, bool sync = false);

// "0x1a2b3c4d"
std::string crc32_hex(uint32_t crc);

}  // namespace tsp
