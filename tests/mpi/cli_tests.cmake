# Tests of the real `tsp` binary: the user's view (exit status, messages on every rank, JSON, round trips).
set(TSP_CLI_DIR ${PROJECT_SOURCE_DIR}/tests/cli)
set(TSP_BIN $<TARGET_FILE:tsp>)

function(tsp_cli_test name)
  add_test(NAME cli_${name} COMMAND ${ARGN})
  set_tests_properties(cli_${name} PROPERTIES ENVIRONMENT "${TSP_MPI_ENV}" TIMEOUT 300 LABELS cli)
endfunction()

foreach(dtype float64 float32)
  tsp_cli_test(check_tsp_np2_${dtype} ${TSP_CLI_DIR}/expect.sh 0 "\"pass\": true" "\"attn.weight_bcast\"" --
               ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check --strategy tsp --preset tiny --seq-len 64 --batch 2
               --dtype ${dtype} --json)
endforeach()
tsp_cli_test(check_single ${TSP_CLI_DIR}/expect.sh 0 "PASS" -- ${TSP_BIN} check --strategy single --seq-len 16)

# Bad input: a clear message on every rank and a non-zero exit, never a crash or a hang.
tsp_cli_test(bad_seq_len ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 0\\] error: --seq-len 30 .*nearest valid lengths: 28 or 32"
             "\\[rank 1\\] error: --seq-len 30" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check --strategy tsp --preset tiny
             --seq-len 30)
tsp_cli_test(bad_heads ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 2\\] error: .*num_attention_heads divisible by 3, but it is 4"
             -- ${TSP_MPIEXEC} -np 3 ${TSP_BIN} check --strategy tsp --preset tiny --seq-len 36)
tsp_cli_test(bad_strategy ${TSP_CLI_DIR}/expect.sh nonzero "unknown --strategy 'megatron' \\(allowed: single, tsp"
             -- ${TSP_BIN} train --strategy megatron --steps 1)
tsp_cli_test(single_needs_one_rank ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 1\\] error: --strategy single runs on exactly 1 rank"
             -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train --strategy single --steps 1)
tsp_cli_test(bad_config ${TSP_CLI_DIR}/expect.sh nonzero "error: .*nonexistent.json" -- ${TSP_BIN} train
             --config ${CMAKE_CURRENT_BINARY_DIR}/nonexistent.json --steps 1)
tsp_cli_test(bad_checkpoint ${TSP_CLI_DIR}/expect.sh nonzero "error: .* is not a checkpoint" -- ${TSP_BIN} eval
             --checkpoint ${CMAKE_CURRENT_BINARY_DIR} --tokens ${TSP_CLI_DIR}/tokens.txt)

tsp_cli_test(pipeline_np2 ${TSP_CLI_DIR}/pipeline.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2)

# Semantics against an independent numpy transcription of HF LlamaForCausalLM (untied MHA/GQA preset, and a
# tied GQA config with head_dim != hidden/heads).
tsp_cli_test(hf_reference_tiny ${TSP_CLI_DIR}/hf_reference.sh ${TSP_BIN} ${PROJECT_SOURCE_DIR}/tests/cli/tiny.json)
tsp_cli_test(hf_reference_tied_gqa ${TSP_CLI_DIR}/hf_reference.sh ${TSP_BIN} ${TSP_CLI_DIR}/tied_gqa.json)
tsp_cli_test(bad_intermediate ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 3\\] error: .*intermediate_size divisible by 4, but it is 90"
             "\\[rank 0\\] error: .*intermediate_size divisible by 4, but it is 90" -- ${TSP_MPIEXEC} -np 4 ${TSP_BIN}
             train --strategy tsp --config ${TSP_CLI_DIR}/intermediate90.json --seq-len 256 --steps 1)
