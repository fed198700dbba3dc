// tsp: training, evaluation, generation and equivalence checks for Llama-style models under several parallel
// layouts. Run directly for one rank, or under mpirun/srun for several.
//
// Failure handling: a usage error (bad option, config, size, rank count) is detected identically on every
// rank before any communication; each rank prints it and the job exits with status 2. Any other failure is
// a failure of one rank: it prints "[rank r] error: ..." and aborts the whole job, so no rank hangs.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cli/common.h"
#include "cli/usage.h"
#include "comm/node.h"
#include "core/check.h"
#include "core/threading.h"
#include "train/stop_signals.h"

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

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// OpenMP and OpenBLAS threads for this rank (core/threading.h), before any computation.
void configure_threads(tsp::Communicator& world) {
  const tsp::NodeCpuShare share = tsp::node_cpu_share(world);
  tsp::ThreadInputs in;
  in.cores = share.cores;
  in.ranks_sharing = share.ranks_sharing;
  in.local_ranks = share.local_ranks;
  in.cli_threads = tsp::cli::threads_option();
  in.omp_env = env_or_empty("OMP_NUM_THREADS");
  in.blas_env = env_or_empty("OPENBLAS_NUM_THREADS");
  const tsp::ThreadPlan plan = tsp::choose_threads(in);
  tsp::apply_threads(plan);
  if (world.rank() == 0 && plan.oversubscribed())
    std::fprintf(stderr,
                 "warning: %d threads per rank x %d rank(s) on %d cores oversubscribes them (%s); leave out "
                 "--threads / OMP_NUM_THREADS to let tsp choose\n",
                 plan.threads, plan.ranks_sharing, plan.cores, plan.source.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  tsp::use_passive_openmp_wait(argv);  // may re-execute the program once; before anything else happens
  tsp::start_stop_signal_thread();     // before MPI starts its threads, so that they inherit the block
  tsp::Communicator::init(&argc, &argv);
  tsp::Communicator world = tsp::Communicator::world();

  CLI::App app{"tsp: folded tensor and sequence parallel (TSP) training and inference for Llama-style models",
               "tsp"};
  app.require_subcommand(1);
  app.set_version_flag("--version", tsp::cli::version_string(), "print the version and exit");
  std::vector<tsp::cli::Command> cmds;
  tsp::cli::add_train_command(app, cmds);
  tsp::cli::add_eval_command(app, cmds);
  tsp::cli::add_generate_command(app, cmds);
  tsp::cli::add_check_command(app, cmds);
  tsp::cli::add_plan_command(app, cmds);
  tsp::cli::add_bench_command(app, cmds);
  tsp::cli::add_help_command(app, cmds);
  tsp::cli::add_tokenize_command(app, cmds);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      if (world.rank() == 0) app.exit(e);
      tsp::Communicator::finalize();
      return 0;
    }
    return finish_after_usage_error(tsp::cli::explain_parse_error(app, argc, argv, e));
  }

  try {
    configure_threads(world);
    for (auto& c : cmds)
      if (c.app->parsed()) {
        tsp::cli::apply_precision(*c.app);
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
