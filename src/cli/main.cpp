// tsp: training, evaluation, generation and equivalence checks for Llama-style models under several parallel
// layouts. Run directly for one rank, or under mpirun/srun for several.
//
// Failure handling: a usage error (bad option, config, size, rank count) is detected identically on every
// rank before any communication; each rank prints it and the job exits with status 2. Any other failure is
// a failure of one rank: it prints "[rank r] error: ..." and aborts the whole job, so no rank hangs.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/common.h"
#include "core/check.h"

namespace {

// Every rank that reaches here prints; if all ranks of the job get here (the usual case: the error is the
// same everywhere) they finish together, else the job is aborted after a grace period so nothing hangs.
int finish_after_usage_error(const std::string& msg) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1)
    std::fprintf(stderr, "[rank %d] error: %s\n", rank, msg.c_str());
  else
    std::fprintf(stderr, "error: %s\n", msg.c_str());
  std::fflush(stderr);
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int done = 0;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!done) MPI_Abort(MPI_COMM_WORLD, 2);
  tsp::Communicator::finalize();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  tsp::Communicator::init(&argc, &argv);
  tsp::Communicator world = tsp::Communicator::world();

  CLI::App app{
      "tsp: folded tensor and sequence parallel (TSP) training and inference for Llama-style models"};
  app.require_subcommand(1);
  std::vector<tsp::cli::Command> cmds;
  tsp::cli::add_train_command(app, cmds);
  tsp::cli::add_eval_command(app, cmds);
  tsp::cli::add_generate_command(app, cmds);
  tsp::cli::add_check_command(app, cmds);
  tsp::cli::add_plan_command(app, cmds);
  tsp::cli::add_bench_command(app, cmds);
  tsp::cli::add_tokenize_command(app, cmds);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = e.get_exit_code();
    if (world.rank() == 0) {
      rc = app.exit(e);
    }
    tsp::Communicator::finalize();
    return rc == 0 ? 0 : 2;
  }

  try {
    for (auto& c : cmds)
      if (c.app->parsed()) {
        int rc = c.run(world);
        tsp::Communicator::finalize();
        return rc;
      }
  } catch (const tsp::UsageError& e) {
    return finish_after_usage_error(e.what());
  } catch (const std::exception& e) {
    tsp::Communicator::abort(e.what(), 1);
  }
  tsp::Communicator::finalize();
  return 2;
}
