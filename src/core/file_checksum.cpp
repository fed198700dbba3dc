#include "core/file_checksum.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/check.h"

namespace tsp {

FileDigest file_digest(const std::string& path, bool sync) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::vector<unsigned char> buf(size_t(1) << 20);
  FileDigest d;
  uLong crc = crc32_z(0L, Z_NULL, 0);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw Error(fmt::format("{}: read error: {}", path, std::strerror(e)));
    }
    if (n == 0) break;
    crc = crc32_z(crc, buf.data(), size_t(n));
    d.size += uint64_t(n);
  }
  if (sync && ::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(fmt::format("{}: fsync failed: {}", path, std::strerror(e)));
  }
  ::close(fd);
  d.crc32 = uint32_t(crc);
  return d;
}

std::string crc32_hex(uint32_t crc) {
  return fmt::format("0x{:08x}", crc);
}

}  // namespace tsp
