# Reliability (docs/reliability.md, tests/cli/reliability/): preemption, checkpoints a crash cannot break,
# damaged files, dead and hung ranks, non-finite steps, and the checks on --checkpoint-dir / --resume / --data
# made before any step.
set(TSP_REL ${TSP_CLI_DIR}/reliability)
set(TSP_TINY_TRAIN train --preset tiny --seq-len 128 --batch 2 --seq-len-warmup 0 --eval-batches 0 --no-progress)

tsp_cli_test(preempt_sigterm_tsp_np2 ${TSP_REL}/preempt.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 SIGTERM resume+second
             --strategy tsp)
tsp_cli_test(preempt_sigint_tp_np2 ${TSP_REL}/preempt.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 SIGINT resume --strategy tp)
tsp_cli_test(preempt_sigterm_dp2_zero1_np2 ${TSP_REL}/preempt.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 SIGTERM resume
             --strategy single --dp 2 --zero1)
# bf16 products (--matmul-precision bf16) resume bit for bit too, for the same thread count: the rounding and
# the oneDNN primitives are deterministic, and the checkpoint holds the fp32 weights and moments.
tsp_cli_test(preempt_sigterm_tsp_bf16_np2 ${TSP_REL}/preempt.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 SIGTERM resume
             --strategy tsp --matmul-precision bf16)
set_tests_properties(cli_preempt_sigterm_tsp_bf16_np2 PROPERTIES SKIP_REGULAR_EXPRESSION
                     "has no bf16 product on this CPU")
# The bf16 policy (--dtype bf16) with bf16 moments and gradient sums resumes bit for bit: the masters and the
# moments are checkpointed exactly (the moments widened from bf16 and rounded back), the bf16 copy is
# re-rounded from the master.
tsp_cli_test(preempt_sigterm_tsp_dtype_bf16_np2 ${TSP_REL}/preempt.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 SIGTERM
             resume --strategy tsp --dtype bf16 --optimizer-dtype bf16 --grad-reduce-dtype bf16)
# --matmul-precision auto resumes bit for bit: trainer_state.json keeps the product paths (rank 0's, taken by
# every rank from the second step on), and the resumed run takes them instead of measuring again; runs pinned
# to one table (--matmul-paths) are reproducible.
tsp_cli_test(preempt_sigterm_tsp_auto_np2 ${TSP_REL}/preempt_auto.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2
             --strategy tsp --dtype bf16)
# Outside training the signals keep their default action (tsp waits for them on a thread of its own).
tsp_cli_test(signal_outside_training ${TSP_REL}/signal_outside_training.sh ${TSP_BIN})
tsp_cli_test(save_dtype_bf16_resume_tsp_np2 ${TSP_REL}/save_dtype.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 --strategy tsp)
tsp_cli_test(crash_during_save_tsp_np2 ${TSP_REL}/crash_save.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 --strategy tsp)
tsp_cli_test(damaged_checkpoints_np2 ${TSP_REL}/corrupt.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 --strategy tsp)
tsp_cli_test(dead_rank_tsp_np2 ${TSP_REL}/dead_rank.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 kills --strategy tsp)
tsp_cli_test(dead_rank_tsp_dp2_np4 ${TSP_REL}/dead_rank.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 4 kills+watchdog
             --strategy tsp --dp 2)

# Non-finite steps (a NaN injected by TSP_DEBUG_FAULT): stop by default, naming step, phase and tensor, with
# nothing written; --skip-nonfinite N skips (counted in the log line and the JSON) and stops after N.
tsp_cli_test(nonfinite_grad_stops ${TSP_CLI_DIR}/expect.sh nonzero
             "error: non-finite gradient at step 3 \\(phase backward: loss [0-9.]+, grad norm nan\\); first parameter with a non-finite gradient: model.layers.1.mlp.down_proj.weight; training stopped without writing a checkpoint"
             "Exit code: +3" -- bash -c "rm -rf ${CMAKE_CURRENT_BINARY_DIR}/nonfinite_ck && TSP_DEBUG_FAULT=action=nan-grad,rank=1,step=3,label=model.layers.1.mlp.down_proj.weight ${MPIEXEC_EXECUTABLE} --oversubscribe -np 2 ${TSP_BIN} train --preset tiny --seq-len 128 --batch 2 --seq-len-warmup 0 --eval-batches 0 --no-progress --strategy tsp --steps 6 --checkpoint-dir ${CMAKE_CURRENT_BINARY_DIR}/nonfinite_ck; rc=$?; ls -A ${CMAKE_CURRENT_BINARY_DIR}/nonfinite_ck | grep -q . && echo WROTE_FILES; exit $rc"
)
set_tests_properties(cli_nonfinite_grad_stops PROPERTIES FAIL_REGULAR_EXPRESSION "WROTE_FILES")
tsp_cli_test(nonfinite_loss_skipped ${TSP_CLI_DIR}/expect.sh 0
             "warning: non-finite gradient at step 2 \\(phase backward: loss [0-9.]+, grad norm nan\\); first parameter with a non-finite gradient: model.embed_tokens.weight: step skipped, weights and optimizer unchanged \\(1 of --skip-nonfinite 2\\)"
             "\"skipped_nonfinite\": 1" "\"skipped\": true" "\"exit_status\": 0" "\"optimizer_step\": 3,"
             -- bash -c "rm -rf ${CMAKE_CURRENT_BINARY_DIR}/skip_ck && ${TSP_BIN} train --preset tiny --seq-len 128 --batch 2 --seq-len-warmup 0 --eval-batches 0 --no-progress --steps 4 --skip-nonfinite 2 --json --checkpoint-dir ${CMAKE_CURRENT_BINARY_DIR}/skip_ck && cat ${CMAKE_CURRENT_BINARY_DIR}/skip_ck/step-000004/trainer_state.json")
set_tests_properties(cli_nonfinite_loss_skipped PROPERTIES ENVIRONMENT
                     "${TSP_MPI_ENV};TSP_DEBUG_FAULT=action=nan-grad,step=2,label=model.embed_tokens.weight")
tsp_cli_test(nonfinite_skips_exhausted ${TSP_CLI_DIR}/expect.sh nonzero
             "skipped \\(non-finite, 2 of 2\\)" "error: non-finite loss at step 4 .*--skip-nonfinite 2 already skipped 2"
             -- ${TSP_BIN} ${TSP_TINY_TRAIN} --steps 6 --skip-nonfinite 2)
set_tests_properties(cli_nonfinite_skips_exhausted PROPERTIES ENVIRONMENT
                     "${TSP_MPI_ENV};TSP_DEBUG_FAULT=action=nan-weight,step=2,label=model.norm.weight")

# Issue 10 items 2, 6, 7: refused before any step (rc 2, every rank).
tsp_cli_test(checkpoint_dir_unwritable ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 1\\] error: --checkpoint-dir /proc/nope cannot be created" "Exit code: +2" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} ${TSP_TINY_TRAIN} --strategy tsp --steps 3 --checkpoint-dir /proc/nope)
set_tests_properties(cli_checkpoint_dir_unwritable PROPERTIES FAIL_REGULAR_EXPRESSION "^step ")
tsp_cli_test(checkpoint_dir_is_file ${TSP_CLI_DIR}/expect.sh nonzero
             "error: --checkpoint-dir .*tokens.txt is not a directory \\(it is a file\\)" -- ${TSP_BIN}
             ${TSP_TINY_TRAIN} --steps 3 --checkpoint-dir ${TSP_CLI_DIR}/tokens.txt)
set_tests_properties(cli_checkpoint_dir_is_file PROPERTIES FAIL_REGULAR_EXPRESSION "^step ")
tsp_cli_test(checkpoint_dir_reuse ${TSP_REL}/reuse.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 --strategy tsp)
