# HF sharded checkpoints from the command line: --max-shard-size, and bad sizes refused on every rank.
tsp_cli_test(sharded_checkpoint_np2 ${TSP_CLI_DIR}/sharded_checkpoint.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2)
tsp_cli_test(bad_max_shard_size ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 0\\] error: --max-shard-size \"5 parsecs\": expected a size such as 5GB"
             "\\[rank 1\\] error: --max-shard-size \"5 parsecs\"" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train
             --strategy tsp --preset tiny --seq-len 128 --steps 1 --max-shard-size "5 parsecs")
