#include "train/resume.h"

#include <cstdio>
#include <filesystem>

#include "core/check.h"
#include "model/checkpoint.h"

namespace fs = std::filesystem;

namespace tsp {

namespace {

std::string describe_source(const nlohmann::json& d) {
  if (d.value("kind", "") == "text") return fmt::format("--data {}", d.value("path", "?"));
  return "the built-in recall task";
}

}  // namespace

ResumePoint find_resume_point(const std::string& resume, CheckpointManager* manager, Communicator& world) {
  ResumePoint p;
  if (resume.empty()) return p;
  if (resume == "auto") {
    TSP_REQUIRE(manager,
                "--resume auto resumes from the newest checkpoint of --checkpoint-dir, which is not given");
    p.dir = manager->newest_complete();
    if (p.dir.empty()) {
      if (world.rank() == 0)
        std::fprintf(stderr, "--resume auto: no complete checkpoint in %s yet: starting at step 0\n",
                     manager->dir().c_str());
      return p;
    }
  } else {
    p.dir = resolve_checkpoint_dir(resume);  // a step directory, or a --checkpoint-dir through its `latest`
    const std::string problem = checkpoint_problem(p.dir, &world, /*require_manifest=*/true);
    TSP_REQUIRE(problem.empty(), "--resume {}: {}", resume, problem);
  }
  const fs::path state = fs::path(p.dir) / "trainer_state.json";
  TSP_REQUIRE(fs::exists(state),
              "--resume {}: {} has no trainer_state.json: it holds weights only (use --init-from "
              "to fine-tune from it with a fresh optimizer)",
              resume, p.dir);
  p.state = read_train_state(state.string());
  return p;
}

nlohmann::json data_source_json(const std::string& data, const RecallSpec& recall) {
  if (!data.empty()) return text_data_source(data);
  return {{"kind", "recall"},
          {"keys", recall.num_keys},
          {"values", recall.num_values},
          {"pairs", recall.pairs},
          {"queries", recall.queries}};
}

std::string data_for_resume(const TrainOptions& o, const TrainState& state, const std::string& checkpoint,
                            bool lead) {
  const nlohmann::json& was = state.data;
  if (was.is_null()) return o.data;  // written before the data source was recorded: nothing to compare
  const std::string kind = was.value("kind", "");
  if (kind == "text") {
    std::string path = o.data;
    if (path.empty()) {
      path = was.value("path", "");
      TSP_REQUIRE(fs::exists(path),
                  "{} was trained on --data {}, which no longer exists: pass --data with the same file",
                  checkpoint, path);
      if (lead) std::fprintf(stderr, "resuming on the checkpoint's training data: --data %s\n", path.c_str());
    }
    const nlohmann::json now = text_data_source(path);
    TSP_REQUIRE(
        now.at("bytes") == was.value("bytes", nlohmann::json()) &&
            now.at("crc32") == was.value("crc32", nlohmann::json()),
        "{} was trained on --data {} ({} bytes, CRC-32 {}), but --data {} has {} bytes, CRC-32 {}: resume "
        "with the same data (or use --init-from to fine-tune on new data)",
        checkpoint, was.value("path", "?"), was.value("bytes", nlohmann::json()).dump(),
        was.value("crc32", "?"), path, now.at("bytes").dump(), now.at("crc32").get<std::string>());
    return path;
  }
  TSP_REQUIRE(kind == "recall", "{}: trainer_state.json names an unknown data kind '{}'", checkpoint, kind);
  TSP_REQUIRE(
      o.data.empty(),
      "{} was trained on the built-in recall task, but this run gives --data {}: resume without --data (or "
      "use --init-from to fine-tune on the file)",
      checkpoint, o.data);
  const nlohmann::json now = data_source_json("", o.recall);
  for (const char* k : {"keys", "values", "pairs", "queries"})
    TSP_REQUIRE(now.at(k) == was.value(k, nlohmann::json()),
                "{} was trained on the recall task with {} {} ({}), but this run asks for {}: resume with "
                "--recall-{} {}",
                checkpoint, k, was.value(k, nlohmann::json()).dump(), describe_source(was), now.at(k).dump(),
                k, was.value(k, nlohmann::json()).dump());
  return o.data;
}

}  // namespace tsp
