# Data parallelism around a layout (--dp N, --zero1) from the command line: equivalence, labels, bad shapes;
# and the mesh layouts through train, eval and generate.
tsp_cli_test(check_tsp_dp2 ${TSP_CLI_DIR}/expect.sh 0 "\"pass\": true" "\"dp.grad_allreduce\"" "\"dp.loss_allreduce\""
             -- ${TSP_MPIEXEC} -np 4 ${TSP_BIN} check --strategy tsp --dp 2 --preset tiny --seq-len 64 --batch 2 --json)
tsp_cli_test(check_tp_dp2 ${TSP_CLI_DIR}/expect.sh 0 "\"pass\": true" "\"dp.grad_allreduce\"" -- ${TSP_MPIEXEC}
             -np 4 ${TSP_BIN} check --strategy tp --dp 2 --preset tiny --seq-len 64 --batch 2 --json)
tsp_cli_test(train_tsp_dp2_zero1 ${TSP_CLI_DIR}/expect.sh 0 "strategy tsp x dp 2 \\(ZeRO-1\\) on 4 ranks"
             "\"dp.grad_reducescatter\"" "\"dp.param_allgather\"" -- ${TSP_MPIEXEC} -np 4 ${TSP_BIN} train --strategy tsp
             --dp 2 --zero1 --preset tiny --seq-len 128 --batch 2 --steps 2 --seq-len-warmup 0 --eval-batches 0 --json)
tsp_cli_test(bad_dp_ranks ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 0\\] error: --dp 3 does not divide the 4 ranks"
             "\\[rank 3\\] error: --dp 3 does not divide the 4 ranks" -- ${TSP_MPIEXEC} -np 4 ${TSP_BIN} check
             --strategy tsp --dp 3 --seq-len 64)
tsp_cli_test(bad_dp_batch ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 1\\] error: --batch 3 must be a positive multiple of --dp 2" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN}
             check --strategy single --dp 2 --seq-len 64 --batch 3)
tsp_cli_test(bad_zero1_without_dp ${TSP_CLI_DIR}/expect.sh nonzero "error: --zero1 .* needs --dp > 1" -- ${TSP_BIN}
             train --strategy single --zero1 --steps 1)
tsp_cli_test(bad_dp_eval ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 1\\] error: --dp 2: eval and generate run one model replica"
             -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} eval --dp 2 --checkpoint ${CMAKE_CURRENT_BINARY_DIR}
             --tokens ${TSP_CLI_DIR}/tokens.txt)

# Train / eval / generate round trips under the mesh layouts (tests/cli/pipeline.sh; tsp runs in cli_tests.cmake).
tsp_cli_test(pipeline_tp_np2 ${TSP_CLI_DIR}/pipeline.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 --strategy tp)
tsp_cli_test(pipeline_sp_np2 ${TSP_CLI_DIR}/pipeline.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2 --strategy sp)
tsp_cli_test(pipeline_tpsp_msp_np4 ${TSP_CLI_DIR}/pipeline.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 4 --strategy tpsp
             --tp 2 --sp 2 --sequence-parallel)
tsp_cli_test(bad_tp_with_tsp ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 1\\] error: --tp, --sp and --sequence-parallel shape the tp / sp / tpsp layouts; --strategy tsp"
             -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check --strategy tsp --tp 2 --seq-len 64)

# tsp plan with a device profile from a JSON file, and a bad one.
tsp_cli_test(plan_device_file ${TSP_CLI_DIR}/expect.sh 0 "\"name\": \"example-accelerator\"" "\"fits\"" -- ${TSP_BIN}
             plan --preset llama7b --seq-len 131072 --ranks 8 --dtype bf16 --device ${TSP_CLI_DIR}/device_profile.json --json)
tsp_cli_test(plan_bad_device_file ${TSP_CLI_DIR}/expect.sh nonzero "error: --device .*nonexistent.json: cannot read" --
             ${TSP_BIN} plan --seq-len 1024 --device ${CMAKE_CURRENT_BINARY_DIR}/nonexistent.json)
# A device profile measured by tsp bench, then used by tsp plan; and refused on one rank (no link to measure).
tsp_cli_test(bench_device_profile_to_plan ${TSP_CLI_DIR}/expect.sh 0 "\"name\": \"measured-" "\"link_bytes_per_s\""
             "recommendation" -- bash -c "${MPIEXEC_EXECUTABLE} --oversubscribe -np 2 ${TSP_BIN} bench --strategy tsp --preset tiny --seq-len 64 --steps 1 --sgemm-n 256 --write-device-profile ${CMAKE_CURRENT_BINARY_DIR}/measured_profile.json && cat ${CMAKE_CURRENT_BINARY_DIR}/measured_profile.json && ${TSP_BIN} plan --preset tiny --seq-len 64 --ranks 2 --device ${CMAKE_CURRENT_BINARY_DIR}/measured_profile.json")
tsp_cli_test(bench_device_profile_one_rank ${TSP_CLI_DIR}/expect.sh nonzero
             "error: --write-device-profile measures the link between ranks and needs at least 2 ranks" -- ${TSP_BIN}
             bench --strategy single --preset tiny --seq-len 64 --steps 1 --write-device-profile
             ${CMAKE_CURRENT_BINARY_DIR}/never_written.json)
