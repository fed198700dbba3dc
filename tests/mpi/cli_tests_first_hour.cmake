# Issue 10, "the first hour of a new user": each trap a new user hit, reproduced through the real binary.
set(TSP_SCRATCH ${CMAKE_CURRENT_BINARY_DIR}/first_hour)
file(MAKE_DIRECTORY ${TSP_SCRATCH}/model_dir ${TSP_SCRATCH}/empty_dir)
configure_file(${TSP_CLI_DIR}/tiny.json ${TSP_SCRATCH}/model_dir/config.json COPYONLY)
file(WRITE ${TSP_SCRATCH}/one_token.txt "5\n7\n")

# 1. Threads per rank chosen by tsp (no OMP_NUM_THREADS needed), shown in the header and --json.
tsp_cli_test(threads_auto ${TSP_CLI_DIR}/threads.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE})

# 3. A model directory for --config (HF's layout) is accepted; a directory for --data or --tokens, or one without
#    config.json, is refused on every rank with rc 2 before any step.
tsp_cli_test(config_dir_plan ${TSP_CLI_DIR}/expect.sh 0 "tsp plan \\| model .*model_dir" "recommendation: " --
             ${TSP_BIN} plan --config ${TSP_SCRATCH}/model_dir --seq-len 64 --ranks 2)
tsp_cli_test(config_dir_train ${TSP_CLI_DIR}/expect.sh 0 "model 0\\.[0-9]+M params \\(h 64, L 2, heads 4/2\\)" --
             ${TSP_BIN} train --config ${TSP_SCRATCH}/model_dir --seq-len 128 --steps 1 --eval-batches 0)
tsp_cli_test(config_dir_without_config ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: --config .*empty_dir is a directory without a config.json" "!MPI_ABORT" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} plan --config ${TSP_SCRATCH}/empty_dir --seq-len 64)
tsp_cli_test(data_dir ${TSP_CLI_DIR}/expect.sh 2 "\\[rank 0\\] error: --data .*model_dir is a directory: give a text file"
             "\\[rank 1\\] error: --data" "!step +1/" "!MPI_ABORT" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train
             --strategy tsp --preset tiny --data ${TSP_SCRATCH}/model_dir --steps 1)
tsp_cli_test(tokens_dir ${TSP_CLI_DIR}/expect.sh 2 "error: --tokens .*model_dir is a directory" -- ${TSP_BIN} eval
             --checkpoint ${TSP_SCRATCH}/model_dir --tokens ${TSP_SCRATCH}/model_dir)

# 4. --eval-seq-len that the layout cannot run is refused before training, naming --eval-seq-len.
tsp_cli_test(eval_seq_len_checked_first ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: --eval-seq-len 250 does not work with --strategy tsp on 2 ranks.*nearest valid lengths: 248 or 252"
             "!step +1/" "!error: --seq-len" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train --strategy tsp --preset tiny
             --seq-len 128 --eval-seq-len 250 --steps 2)

# 5. The sequence-length warm-up scales to a short run (and still reaches --seq-len); one as long as the run is
#    refused.
tsp_cli_test(warmup_scales_to_steps ${TSP_CLI_DIR}/expect.sh 0
             "sequence-length warm-up: 128 -> 256 tokens over 3 steps \\(70% of --steps" "step +5/5 \\| seq +256 x +1"
             -- ${TSP_BIN} train --preset tiny --seq-len 256 --steps 5 --eval-batches 1)
tsp_cli_test(warmup_off_below_its_start ${TSP_CLI_DIR}/expect.sh 0 "step +2/2" "!sequence-length warm-up" -- ${TSP_BIN}
             train --preset tiny --data ${PROJECT_SOURCE_DIR}/README.md --seq-len 64 --steps 2)
tsp_cli_test(eval_seq_len_with_data ${TSP_CLI_DIR}/expect.sh 2 "error: --eval-seq-len sets the length of the held-out recall"
             "!step +1/" -- ${TSP_BIN} train --preset tiny --data ${PROJECT_SOURCE_DIR}/README.md --seq-len 64
             --eval-seq-len 128 --steps 2)
tsp_cli_test(warmup_longer_than_run ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: --seq-len-warmup 700 is not below --steps 200: .*reaches --seq-len 2048"
             "!step +1/" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train --strategy tsp --steps 200 --seq-len-warmup 700)

# 9. eval with nothing to predict is an error, not a loss of 0.
tsp_cli_test(eval_nothing_to_predict ${TSP_CLI_DIR}/expect.sh 2 "error: --tokens file .*one_token.txt: nothing to evaluate"
             "!perplexity" -- ${TSP_BIN} eval --checkpoint ${TSP_SCRATCH}/model_dir --tokens ${TSP_SCRATCH}/one_token.txt)

# 10. --strategy single on several ranks: eval and generate suggest the layouts they run, not --dp.
tsp_cli_test(generate_single_on_two_ranks ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: --strategy single runs on exactly 1 rank.*--strategy tsp, tp, sp or tpsp" "!--dp" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} generate --checkpoint ${TSP_SCRATCH}/model_dir --prompt-tokens "1 2")
tsp_cli_test(eval_single_on_two_ranks ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 0\\] error: --strategy single runs on exactly 1 rank.*--strategy tsp" "!--dp" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} eval --checkpoint ${TSP_SCRATCH}/model_dir --tokens ${TSP_CLI_DIR}/tokens.txt)

# 11. The progress bar only on an interactive terminal, never interleaved; --log-every.
tsp_cli_test(progress_bar ${TSP_CLI_DIR}/progress.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE})

# 12, 13. Communication per step in train --json (= bench's), trace files named as documented.
tsp_cli_test(run_reports ${TSP_CLI_DIR}/run_reports.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE})

# 14. --version, help, and "did you mean" for commands and options.
tsp_cli_test(version ${TSP_CLI_DIR}/expect.sh 0 "^tsp [0-9]+\\.[0-9]+\\.[0-9]+ \\(git [^)]+\\)$" -- ${TSP_BIN} --version)
tsp_cli_test(help ${TSP_CLI_DIR}/expect.sh 0 "Usage: tsp \\[OPTIONS\\] SUBCOMMAND" "train +train a model" "plan +predict"
             -- ${TSP_BIN} help)
tsp_cli_test(help_command ${TSP_CLI_DIR}/expect.sh 0 "Usage: tsp plan \\[OPTIONS\\]" "--seq-len" -- ${TSP_BIN} help plan)
tsp_cli_test(mistyped_command ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: unknown command 'trian' \\(did you mean 'train'\\?\\)" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN}
             trian)
tsp_cli_test(mistyped_option ${TSP_CLI_DIR}/expect.sh 2
             "error: tsp train has no option --step \\(did you mean '--steps'\\?\\)" -- ${TSP_BIN} train --step 5)
tsp_cli_test(no_command ${TSP_CLI_DIR}/expect.sh 2 "error: a command is required: train, eval" -- ${TSP_BIN})

# 15-17. The planner: a context beyond max_position_embeddings is planned with a warning; "none" says why;
#        --tp that names no factorisation is refused; the devices' real memory.
tsp_cli_test(plan_context_extension ${TSP_CLI_DIR}/expect.sh 0
             "warning: --seq-len 262144 exceeds the model's context 131072 .max_position_embeddings 131072" "tsp +8 +8 \\|" "!not applicable"
             -- ${TSP_BIN} plan --preset llama7b --seq-len 262144 --ranks 8 --dtype bf16 --device h100)
tsp_cli_test(plan_context_extension_json ${TSP_CLI_DIR}/expect.sh 0
             "\"context_exceeds_max_position_embeddings\": true" -- ${TSP_BIN} plan --preset tiny --seq-len 16384
             --ranks 2 --json)
tsp_cli_test(plan_nothing_applies ${TSP_CLI_DIR}/expect.sh 0
             "recommendation: none: no layout applies to this model and shape" -- ${TSP_BIN} plan --preset tiny
             --seq-len 31 --ranks 3)
tsp_cli_test(plan_nothing_fits ${TSP_CLI_DIR}/expect.sh 0
             "recommendation: none: no applicable layout fits the memory budget of 1.00 MiB per device \\(the smallest, .* needs"
             -- ${TSP_BIN} plan --preset small --seq-len 4096 --ranks 2 --memory-budget 1MiB)
tsp_cli_test(plan_bad_tp ${TSP_CLI_DIR}/expect.sh 2
             "error: --tp 3 does not restrict the tpsp mesh of --ranks 4 .*those of --ranks 4: 2x2" -- ${TSP_BIN}
             plan --preset tiny --seq-len 64 --ranks 4 --tp 3)
tsp_cli_test(plan_h100_memory ${TSP_CLI_DIR}/expect.sh 0 "budget 79\\.65 GiB \\(the device's memory\\)"
             "tpsp-sp +4 +2 \\| .* 70\\.96 GiB .* \\| yes" "tsp +8 +8 \\| .* 36\\.23 GiB .* \\| yes" -- ${TSP_BIN} plan
             --preset llama7b --seq-len 131072 --ranks 8
             --dtype bf16 --device h100)
tsp_cli_test(plan_this_machine ${TSP_CLI_DIR}/expect.sh 0
             "device: this machine: [0-9]+ cores?, [0-9.]+ GiB.*per rank of 4" "\"host_cores\": [1-9]" -- bash -c
             "${TSP_BIN} plan --preset small --seq-len 4096 --ranks 4 && ${TSP_BIN} plan --preset small --seq-len 4096 --ranks 4 --json")

# 18, 19. plan --plot from an installed tsp, and what the charts show.
tsp_cli_test(plan_installed ${TSP_CLI_DIR}/plan_installed.sh ${CMAKE_BINARY_DIR})
tsp_cli_test(plan_charts /usr/bin/python3 ${TSP_CLI_DIR}/plot_check.py ${TSP_BIN} ${PROJECT_SOURCE_DIR}/scripts/plot_plan.py
             ${TSP_SCRATCH}/charts)
