#include "train/checkpoint_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "comm/fault_injection.h"
#include "core/check.h"
#include "core/file_checksum.h"

namespace fs = std::filesystem;

namespace tsp {

namespace {

constexpr const char* kPartialSuffix = ".partial";
constexpr const char* kLegacyPrefix = "step_";  // step_000020: checkpoints written before the manager

// Rank 0's string on every rank (the file system is looked at once, so every rank decides alike).
void broadcast_string(Communicator* comm, std::string& s) {
  if (!comm || comm->size() == 1) return;
  int64_t n = int64_t(s.size());
  comm->broadcast("checkpoint.agree", &n, 1, 0);
  std::vector<int64_t> words(size_t((n + 7) / 8), 0);
  if (comm->rank() == 0) std::memcpy(words.data(), s.data(), size_t(n));
  comm->broadcast("checkpoint.agree", words.data(), int64_t(words.size()), 0);
  s.assign(reinterpret_cast<const char*>(words.data()), size_t(n));
}

// Runs `check` on rank 0 and throws its complaint (if any) as the same UsageError on every rank.
void agree(Communicator& world, const std::function<std::string()>& check) {
  std::string problem;
  if (world.rank() == 0) problem = check();
  broadcast_string(&world, problem);
  if (!problem.empty()) throw UsageError(problem);
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  TSP_CHECK(fd >= 0, "cannot open {} to fsync it: {}", p.string(), std::strerror(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  TSP_CHECK(rc == 0, "fsync of {} failed: {}", p.string(), std::strerror(e));
}

// Writes `text` to `path` durably: a temporary beside it, fsync, rename, fsync of the directory.
void write_durably(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    TSP_CHECK(static_cast<bool>(f), "cannot write {}: {}", tmp.string(), std::strerror(errno));
  }
  fsync_path(tmp, false);
  fs::rename(tmp, path);
  fsync_path(path.parent_path(), true);
}

// Every regular file under `dir`, relative, sorted (the manifest itself excluded).
std::vector<std::string> list_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string rel = fs::relative(e.path(), dir).generic_string();
    if (rel != kManifestFile) out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Size and CRC-32 of dir/files[i] for every i, each rank reading a share (i % size == rank); missing files
// get size UINT64_MAX. Collective over comm.
std::vector<FileDigest> digest_files(const fs::path& dir, const std::vector<std::string>& files,
                                     Communicator* comm, bool sync) {
  const int rank = comm ? comm->rank() : 0, size = comm ? comm->size() : 1;
  std::vector<int64_t> v(2 * files.size(), 0);
  for (size_t i = 0; i < files.size(); ++i) {
    if (int(i % size_t(size)) != rank) continue;
    const fs::path p = dir / files[i];
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      v[2 * i] = -1;
      continue;
    }
    const FileDigest d = file_digest(p.string(), sync);
    v[2 * i] = int64_t(d.size);
    v[2 * i + 1] = int64_t(d.crc32);
  }
  if (comm && size > 1) comm->all_reduce("checkpoint.digest_allreduce", v.data(), int64_t(v.size()));
  std::vector<FileDigest> out(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    out[i].size = v[2 * i] < 0 ? UINT64_MAX : uint64_t(v[2 * i]);
    out[i].crc32 = uint32_t(v[2 * i + 1]);
  }
  return out;
}

bool is_partial(const std::string& name) {
  return name.starts_with(".") && name.find("step-") != std::string::npos;
}

}  // namespace

std::string checkpoint_problem(const std::string& dir_in, Communicator* comm, bool require_manifest) {
  const fs::path dir(dir_in);
  // Rank 0 reads the manifest; every rank parses the same text, so every rank reaches the same verdict.
  std::string text, status;
  if (!comm || comm->rank() == 0) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      status = "missing";
    else if (!fs::exists(dir / kManifestFile, ec))
      status = "no-manifest";
    else
      text = read_text(dir / kManifestFile), status = "ok";
  }
  broadcast_string(comm, status);
  if (status == "missing") return fmt::format("{} does not exist or is not a directory", dir_in);
  if (status == "no-manifest")
    return require_manifest
               ? fmt::format("{} has no {}: the save did not finish, or it was not written by tsp train",
                             dir_in, kManifestFile)
               : "";
  broadcast_string(comm, text);
  Manifest m;
  try {
    m = parse_manifest(text, (dir / kManifestFile).string());
  } catch (const UsageError& e) {
    return e.what();
  }
  std::vector<std::string> names;
  for (const auto& f : m.files) names.push_back(f.path);
  const std::vector<FileDigest> got = digest_files(dir, names, comm, false);
  for (size_t i = 0; i < m.files.size(); ++i) {
    const ManifestEntry& want = m.files[i];
    const std::string path = (dir / want.path).string();
    if (got[i].size == UINT64_MAX) return fmt::format("{}: missing (listed in {})", path, kManifestFile);
    if (got[i].size != want.size)
      return fmt::format("{}: {} bytes, but {} lists {} (truncated or overwritten)", path, got[i].size,
                         kManifestFile, want.size);
    if (got[i].crc32 != want.crc32)
      return fmt::format("{}: CRC-32 {} does not match {} in {} (the file is corrupt)", path,
                         crc32_hex(got[i].crc32), crc32_hex(want.crc32), kManifestFile);
  }
  return "";
}

CheckpointManager::CheckpointManager(std::string dir, int64_t keep, bool overwrite, Communicator& world)
    : dir_(std::move(dir)), keep_(keep), overwrite_(overwrite), world_(world) {
  TSP_REQUIRE(keep_ >= 0, "--keep-checkpoints must be >= 0 (0 keeps every checkpoint), got {}", keep_);
  agree(world_, [&]() -> std::string {
    const fs::path d(dir_);
    std::error_code ec;
    if (fs::exists(d, ec) && !fs::is_directory(d, ec))
      return fmt::format("--checkpoint-dir {} is not a directory (it is a file)", dir_);
    fs::create_directories(d, ec);
    if (ec) return fmt::format("--checkpoint-dir {} cannot be created: {}", dir_, ec.message());
    // Writable? Create (and remove) a file the way a save will.
    const fs::path probe = d / fmt::format(".tsp-write-probe-{}", ::getpid());
    {
      std::ofstream f(probe);
      f << "probe\n";
      f.close();
      if (!f) return fmt::format("--checkpoint-dir {} is not writable: {}", dir_, std::strerror(errno));
    }
    fs::remove(probe, ec);
    for (const auto& e : fs::directory_iterator(d, ec)) {
      const std::string name = e.path().filename().string();
      if (e.is_directory() && is_partial(name)) fs::remove_all(e.path(), ec);  // an interrupted save
    }
    return "";
  });
  // The step directories already there, the same list on every rank.
  std::vector<int64_t> steps;
  if (world_.rank() == 0) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string name = e.path().filename().string();
      int64_t s = 0;
      if (!e.is_directory()) continue;
      if (parse_step_name(name, &s))
        steps.push_back(s);
      else if (name.starts_with(kLegacyPrefix) && parse_step_name("step-" + name.substr(5), &s))
        steps.push_back(s);
    }
    std::sort(steps.begin(), steps.end());
  }
  int64_t n = int64_t(steps.size());
  if (world_.size() > 1) {
    world_.broadcast("checkpoint.agree", &n, 1, 0);
    steps.resize(size_t(n));
    world_.broadcast("checkpoint.agree", steps.data(), n, 0);
  }
  existing_ = steps;
}

std::string CheckpointManager::newest_complete() {
  for (auto it = existing_.rbegin(); it != existing_.rend(); ++it) {
    const std::string d = (fs::path(dir_) / step_dir_name(*it)).string();
    const std::string problem = checkpoint_problem(d, &world_, true);
    if (problem.empty()) return d;
    damaged_.push_back(*it);
    if (world_.rank() == 0)
      std::fprintf(stderr, "warning: --resume auto skips %s: %s\n", d.c_str(), problem.c_str());
  }
  return "";
}

void CheckpointManager::admit(int64_t resumed_step) {
  std::vector<int64_t> in_the_way;
  for (int64_t s : existing_)
    if ((resumed_step < 0 || s > resumed_step) &&
        std::find(damaged_.begin(), damaged_.end(), s) == damaged_.end())
      in_the_way.push_back(s);
  // Damaged checkpoints that --resume auto skipped go once this run has written a complete one.
  for (int64_t s : damaged_) stale_.push_back((fs::path(dir_) / step_dir_name(s)).string());
  if (in_the_way.empty()) return;
  if (!overwrite_) {
    if (resumed_step < 0)
      throw UsageError(
          fmt::format("--checkpoint-dir {} already holds checkpoints (the newest is step {}): pass --resume "
                      "auto to continue "
                      "that run, --overwrite to replace them, or choose another directory",
                      dir_, in_the_way.back()));
    throw UsageError(fmt::format(
        "--checkpoint-dir {} holds checkpoints newer than the resumed step {} (the newest is step {}): pass "
        "--overwrite to replace them, or resume from the newest",
        dir_, resumed_step, in_the_way.back()));
  }
  for (int64_t s : in_the_way) {
    stale_.push_back((fs::path(dir_) / step_dir_name(s)).string());
    stale_.push_back((fs::path(dir_) / fmt::format("{}{:06d}", kLegacyPrefix, s)).string());
  }
}

std::string CheckpointManager::save(int64_t step,
                                    const std::function<void(const std::string&)>& write_files) {
  const bool lead = world_.rank() == 0;
  const std::string name = step_dir_name(step);
  const fs::path root(dir_), final_dir = root / name, partial = root / ("." + name + kPartialSuffix);
  world_.barrier();
  fault_point("save", "save.begin");
  if (lead) {
    std::error_code ec;
    fs::remove_all(partial, ec);
  }
  world_.barrier();
  write_files(partial.string());
  world_.barrier();
  fault_point("save", "save.files-written");

  // The manifest: every file's size and CRC-32, each rank reading a share and fsyncing it.
  std::string listing;
  if (lead) {
    for (const auto& f : list_files(partial)) listing += f + "\n";
  }
  broadcast_string(&world_, listing);
  std::vector<std::string> files;
  for (size_t p = 0; p < listing.size();) {
    const size_t e = listing.find('\n', p);
    files.push_back(listing.substr(p, e - p));
    p = e + 1;
  }
  const std::vector<FileDigest> digests = digest_files(partial, files, &world_, true);
  fault_point("save", "save.digested");
  if (lead) {
    Manifest m;
    m.step = step;
    for (size_t i = 0; i < files.size(); ++i)
      m.files.push_back({files[i], digests[i].size, digests[i].crc32});
    {
      const fs::path mp = partial / kManifestFile;
      std::ofstream f(mp, std::ios::binary);
      f << manifest_json(m);
      f.close();
      TSP_CHECK(static_cast<bool>(f), "cannot write {}: {}", mp.string(), std::strerror(errno));
      fsync_path(mp, false);
    }
    fsync_path(partial, true);
  }
  fault_point("save", "save.manifest-written");
  if (lead) {
    // A step directory of the same name (a run resumed from an earlier step with --overwrite) goes away
    // only once its replacement is complete.
    std::error_code ec;
    const fs::path old = root / ("." + name + ".replaced");
    if (fs::exists(final_dir, ec)) {
      fs::remove_all(old, ec);
      fs::rename(final_dir, old);
    }
    fs::rename(partial, final_dir);
    fsync_path(root, true);
    fs::remove_all(old, ec);
  }
  fault_point("save", "save.renamed");
  if (lead) write_durably(root / "latest", name + "\n");
  fault_point("save", "save.latest-written");
  if (lead) {
    std::error_code ec;
    for (const auto& s : stale_)
      if (s != final_dir.string()) fs::remove_all(s, ec);
    // Retention: the K newest step directories stay (never the one just written or `latest`).
    if (keep_ > 0) {
      std::vector<int64_t> steps;
      for (const auto& e : fs::directory_iterator(root, ec)) {
        int64_t s = 0;
        if (e.is_directory() && parse_step_name(e.path().filename().string(), &s)) steps.push_back(s);
      }
      std::sort(steps.begin(), steps.end());
      for (size_t i = 0; i + size_t(keep_) < steps.size(); ++i)
        if (steps[i] != step) fs::remove_all(root / step_dir_name(steps[i]), ec);
    }
  }
  stale_.clear();
  fault_point("save", "save.pruned");
  world_.barrier();
  return final_dir.string();
}

}  // namespace tsp
