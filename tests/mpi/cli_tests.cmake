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
tsp_cli_test(bad_strategy ${TSP_CLI_DIR}/expect.sh nonzero "unknown --strategy 'megatron' \\(allowed: single, tp, sp, tpsp, tsp\\)"
             -- ${TSP_BIN} train --strategy megatron --steps 1)
tsp_cli_test(single_needs_one_rank ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 1\\] error: --strategy single runs on exactly 1 rank"
             -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train --strategy single --steps 1)
tsp_cli_test(bad_config ${TSP_CLI_DIR}/expect.sh nonzero "error: .*nonexistent.json" -- ${TSP_BIN} train
             --config ${CMAKE_CURRENT_BINARY_DIR}/nonexistent.json --steps 1)
tsp_cli_test(bad_checkpoint ${TSP_CLI_DIR}/expect.sh nonzero "error: .* is not a checkpoint" -- ${TSP_BIN} eval
             --checkpoint ${CMAKE_CURRENT_BINARY_DIR} --tokens ${TSP_CLI_DIR}/tokens.txt)

# --dtype names the allowed precisions on every rank; the bf16 policy's companions need a float model.
tsp_cli_test(bad_dtype ${TSP_CLI_DIR}/expect.sh nonzero
             "error: --dtype: fp8 not in \\{float32,bf16,bfloat16,float64\\}" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train
             --strategy tsp --preset tiny --seq-len 80 --steps 1 --dtype fp8)
tsp_cli_test(optimizer_dtype_needs_float ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: --optimizer-dtype bf16 needs --dtype float32 or bf16 \\(got float64\\)" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train --strategy tsp --preset tiny --seq-len 80 --steps 1 --dtype float64
             --optimizer-dtype bf16)
tsp_cli_test(grad_reduce_dtype_needs_float ${TSP_CLI_DIR}/expect.sh 2
             "error: --grad-reduce-dtype bf16 needs --dtype float32 or bf16 \\(got float64\\)" -- ${TSP_BIN} check
             --preset tiny --seq-len 16 --dtype float64 --grad-reduce-dtype bf16)

tsp_cli_test(pipeline_np2 ${TSP_CLI_DIR}/pipeline.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2)

# Semantics against an independent numpy transcription of HF LlamaForCausalLM (untied MHA/GQA preset, and a
# tied GQA config with head_dim != hidden/heads).
tsp_cli_test(hf_reference_tiny ${TSP_CLI_DIR}/hf_reference.sh ${TSP_BIN} ${PROJECT_SOURCE_DIR}/tests/cli/tiny.json)
tsp_cli_test(hf_reference_tied_gqa ${TSP_CLI_DIR}/hf_reference.sh ${TSP_BIN} ${TSP_CLI_DIR}/tied_gqa.json)
# The architectures and rope_scaling types HF computes differently (issue 9): Qwen2 biases with linear RoPE,
# Qwen3 q/k norms with yarn (one KV head), Llama 3.1's llama3 RoPE, Mistral with dynamic NTK RoPE (a
# 100-token sequence past max_position_embeddings 64). Then the same through layouts: trained under tsp on 4
# ranks (the KV head replicated 4 times, saved once) and evaluated under tp on 2; Qwen2's sharded biases
# trained under tp --sequence-parallel and evaluated under tsp.
foreach(cfg qwen2_linear qwen3_yarn_kv1 llama31_rope mistral_dynamic)
  tsp_cli_test(hf_reference_${cfg} ${TSP_CLI_DIR}/hf_reference.sh ${TSP_BIN} ${TSP_CLI_DIR}/${cfg}.json)
endforeach()
tsp_cli_test(hf_reference_qwen3_kv_replicated_tsp4_tp2 ${TSP_CLI_DIR}/hf_reference.sh ${TSP_BIN}
             ${TSP_CLI_DIR}/qwen3_yarn_kv1.json ${MPIEXEC_EXECUTABLE} 4 "--strategy tsp" 2 "--strategy tp")
tsp_cli_test(hf_reference_qwen2_tpmsp2_tsp2 ${TSP_CLI_DIR}/hf_reference.sh ${TSP_BIN} ${TSP_CLI_DIR}/qwen2_linear.json
             ${MPIEXEC_EXECUTABLE} 2 "--strategy tp --sequence-parallel" 2 "--strategy tsp")
# What the architectures cannot run is refused with the reason, on every rank.
tsp_cli_test(bad_sliding_window ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 1\\] error: --seq-len 256 exceeds sliding_window 128 of this mistral config" -- ${TSP_MPIEXEC}
             -np 2 ${TSP_BIN} train --strategy tsp --config ${TSP_CLI_DIR}/mistral_window.json --seq-len 256 --steps 1)
tsp_cli_test(bad_rope_type ${TSP_CLI_DIR}/expect.sh nonzero
             "error: .*rope_scaling: rope_type \"longrope\" is not supported \\(allowed: default, linear, dynamic, llama3, yarn"
             -- ${TSP_BIN} train --config ${TSP_CLI_DIR}/bad_rope.json --steps 1)
tsp_cli_test(bad_intermediate ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 3\\] error: .*intermediate_size divisible by 4, but it is 90"
             "\\[rank 0\\] error: .*intermediate_size divisible by 4, but it is 90" -- ${TSP_MPIEXEC} -np 4 ${TSP_BIN}
             train --strategy tsp --config ${TSP_CLI_DIR}/intermediate90.json --seq-len 256 --steps 1)

# --- bench ---
tsp_cli_test(bench_tsp_np2 ${TSP_CLI_DIR}/expect.sh 0 "\"per_rank\"" "\"comm_exposed\"" "\"attn.kv_allgather\"" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} bench --strategy tsp --preset tiny --seq-len 64 --steps 1 --sgemm-n 256
             --json)
tsp_cli_test(bench_compare_np2 ${TSP_CLI_DIR}/expect.sh 0 "ratios against tsp" "tsp\\+kv .* 1\\.[0-9]{3} " --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} bench --compare tsp,tsp+kv --preset tiny --seq-len 64 --steps 1
             --sgemm-n 256)
# --no-overlap: the same loss and the same calls and bytes per label as the overlapped bench, only the waits move.
tsp_cli_test(bench_no_overlap_np2 ${TSP_CLI_DIR}/no_overlap.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE})
tsp_cli_test(bench_bad_steps ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 0\\] error: --steps must be >= 1 .*got 0"
             "\\[rank 1\\] error: --steps must be >= 1" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} bench --strategy tsp
             --preset tiny --seq-len 64 --steps 0)
tsp_cli_test(bench_bad_compare ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 0\\] error: --compare entry 'megatron': unknown layout 'megatron'"
             "\\[rank 1\\] error: --compare entry 'megatron'" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} bench --compare
             tsp,megatron --preset tiny --seq-len 64)
tsp_cli_test(bench_compare_with_strategy ${TSP_CLI_DIR}/expect.sh nonzero "error: --compare takes the layout from its entries"
             -- ${TSP_BIN} bench --strategy tsp --compare single --preset tiny --seq-len 64)

# --- mesh strategies ---
# tp, sp and tpsp (with and without Megatron-SP) against the single-device model, and mesh shapes that do not
# fit the ranks: an error on every rank and a non-zero exit.
foreach(dtype float64 float32)
  tsp_cli_test(check_tpsp_2x2_${dtype} ${TSP_CLI_DIR}/expect.sh 0 "\"pass\": true" "\"sp.kv_allgather\""
               "\"tp.attn_out_allreduce\"" -- ${TSP_MPIEXEC} -np 4 ${TSP_BIN} check --strategy tpsp --tp 2 --sp 2
               --preset tiny --seq-len 64 --batch 2 --dtype ${dtype} --json)
endforeach()
tsp_cli_test(check_tpsp_2x2_msp ${TSP_CLI_DIR}/expect.sh 0 "\"pass\": true" "\"tp.attn_out_reducescatter\"" --
             ${TSP_MPIEXEC} -np 4 ${TSP_BIN} check --strategy tpsp --sp 2 --sequence-parallel --preset tiny
             --seq-len 64 --batch 2 --json)
tsp_cli_test(check_tp_np2 ${TSP_CLI_DIR}/expect.sh 0 "PASS" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check --strategy tp
             --preset tiny --seq-len 64 --batch 2)
tsp_cli_test(check_tp_msp_np2 ${TSP_CLI_DIR}/expect.sh 0 "PASS" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check
             --strategy tp --sequence-parallel --preset tiny --seq-len 64 --batch 2)
tsp_cli_test(check_sp_np3 ${TSP_CLI_DIR}/expect.sh 0 "PASS" -- ${TSP_MPIEXEC} -np 3 ${TSP_BIN} check --strategy sp
             --preset tiny --seq-len 60 --batch 2)
tsp_cli_test(bad_mesh ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 0\\] error: --strategy tpsp with --tp 3: 4 ranks do not split into TP groups of 3"
             "\\[rank 3\\] error: --strategy tpsp with --tp 3" -- ${TSP_MPIEXEC} -np 4 ${TSP_BIN} check --strategy tpsp
             --tp 3 --preset tiny --seq-len 64)
tsp_cli_test(bad_mesh_no_shape ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 1\\] error: --strategy tpsp needs the mesh shape"
             -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check --strategy tpsp --preset tiny --seq-len 64)
tsp_cli_test(bad_sp_sequence_parallel ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 1\\] error: --sequence-parallel needs a tensor-parallel axis" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN}
             check --strategy sp --sequence-parallel --preset tiny --seq-len 64)
tsp_cli_test(bad_tp_heads ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 2\\] error: .*num_attention_heads divisible by 3"
             -- ${TSP_MPIEXEC} -np 3 ${TSP_BIN} check --strategy tp --preset tiny --seq-len 64)

# --- plan ---
# tsp plan: the table, the JSON document, the charts, and bad input (a message naming the value, exit 2).
tsp_cli_test(plan_table ${TSP_CLI_DIR}/expect.sh 0 "recommendation: " "tsp +8 +8 \\|" "tpsp-sp +4 +2"
             -- ${TSP_BIN} plan --preset llama7b --seq-len 131072 --ranks 8 --dtype bf16 --device mi300x)
tsp_cli_test(plan_json ${TSP_CLI_DIR}/expect.sh 0 "\"comm_by_label\"" "\"sp.kv_allgather\"" "\"recommendation\""
             "\"projected_tokens_per_s\"" "\"reason\": \"seq_len 60 is not a multiple of 8"
             -- ${TSP_BIN} plan --preset tiny --seq-len 60 --ranks 4 --dp 2 --zero1 --json)
# Llama-3.1-8B's 8 KV heads at D = 16: each replicated on 2 ranks, the holders' gradient sum counted.
tsp_cli_test(plan_llama3_8b_d16 ${TSP_CLI_DIR}/expect.sh 0 "\"attn.kv_head_grad_allreduce\"" "\"tp.kv_head_grad_allreduce\""
             -- ${TSP_BIN} plan --preset llama3_8b --seq-len 131072 --ranks 16 --dtype bf16 --device h100 --json)
tsp_cli_test(plan_not_applicable ${TSP_CLI_DIR}/expect.sh 0 "sp .*not applicable: seq_len 30 is not a multiple of 4"
             -- ${TSP_BIN} plan --preset tiny --seq-len 30 --ranks 2)
tsp_cli_test(plan_plot ${TSP_CLI_DIR}/expect.sh 0 "wrote .*memory_vs_seq.png" "wrote .*comm_vs_tokens.svg"
             "wrote .*throughput_vs_devices.png" -- ${TSP_BIN} plan --preset small --seq-len 4096 --ranks 4
             --plot ${CMAKE_CURRENT_BINARY_DIR}/plan_plots)
tsp_cli_test(plan_bad_device ${TSP_CLI_DIR}/expect.sh nonzero
             "error: unknown --device 'tpu' \\(allowed: mi300x, h100, cpu-this-machine, or a JSON profile file\\)"
             -- ${TSP_BIN} plan --preset tiny --seq-len 64 --device tpu)
tsp_cli_test(plan_bad_budget ${TSP_CLI_DIR}/expect.sh nonzero "error: --memory-budget '12XB' has an unknown unit"
             -- ${TSP_BIN} plan --preset tiny --seq-len 64 --memory-budget 12XB)
tsp_cli_test(plan_bad_seq_len ${TSP_CLI_DIR}/expect.sh nonzero "error: --seq-len must be positive, got 0"
             -- ${TSP_BIN} plan --preset tiny --seq-len 0)
tsp_cli_test(plan_bad_dtype ${TSP_CLI_DIR}/expect.sh nonzero
             "error: --optimizer-dtype 'fp8' is not a dtype \\(allowed: float32, bf16, float64\\)"
             -- ${TSP_BIN} plan --preset tiny --seq-len 64 --optimizer-dtype fp8)

# --- inference (docs/inference.md) ---
tsp_cli_test(generate_layouts ${TSP_CLI_DIR}/generate_layouts.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE}
             ${TSP_CLI_DIR}/tiny.json)
tsp_cli_test(generate_dtype_bf16 ${TSP_CLI_DIR}/generate_bf16.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE})
tsp_cli_test(generate_bad_kv_layout ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 0\\] error: unknown --kv-layout 'diagonal' \\(allowed: heads, sequence\\)"
             "\\[rank 1\\] error: unknown --kv-layout 'diagonal'" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} generate
             --strategy tsp --kv-layout diagonal --checkpoint ${CMAKE_CURRENT_BINARY_DIR} --prompt-tokens "1 2")
# A directory with only config.json: the layout refuses the option before any weight is read.
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/config_only)
configure_file(${TSP_CLI_DIR}/tiny.json ${CMAKE_CURRENT_BINARY_DIR}/config_only/config.json COPYONLY)
tsp_cli_test(generate_kv_layout_not_tsp ${TSP_CLI_DIR}/expect.sh nonzero
             "\\[rank 1\\] error: --kv-layout chooses where TSP keeps its KV cache; --strategy tp caches"
             -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} generate --strategy tp --kv-layout sequence
             --checkpoint ${CMAKE_CURRENT_BINARY_DIR}/config_only --prompt-tokens "1 2")
tsp_cli_test(generate_top_k_greedy ${TSP_CLI_DIR}/expect.sh nonzero
             "error: --top-k and --top-p shape sampling; give --temperature > 0"
             -- ${TSP_BIN} generate --top-k 5 --checkpoint ${CMAKE_CURRENT_BINARY_DIR} --prompt-tokens "1 2")
tsp_cli_test(plan_inference_paper ${TSP_CLI_DIR}/expect.sh 0 "tsp-heads +8 +8 heads" "tsp-sequence +8 +8 sequence"
             "recommendation: tsp-heads" -- ${TSP_BIN} plan --inference --preset llama7b --context 131072
             --ranks 8 --dtype bf16 --device mi300x)
tsp_cli_test(plan_inference_needs_context ${TSP_CLI_DIR}/expect.sh nonzero
             "error: --inference plans by --context" -- ${TSP_BIN} plan --inference --preset small --seq-len 512)
tsp_cli_test(bench_decode_np2 ${TSP_CLI_DIR}/expect.sh 0 "\"ttft_s\"" "\"p99\"" "\"output_tokens_per_s\"" "\"kv_cache\""
             "\"decode.attn_out_allreduce\"" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} bench --decode --strategy tsp
             --preset tiny --prompt-len 40 --new-tokens 4 --batch 2 --json)
tsp_cli_test(bench_decode_compare_np2 ${TSP_CLI_DIR}/expect.sh 0 "ratios against tp" "tsp\\+seq +[0-9.]+ +[0-9.]+"
             -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} bench --decode --compare tp,tsp,tsp+seq --preset tiny --prompt-len 40
             --new-tokens 4)
tsp_cli_test(bench_no_frozen_without_decode ${TSP_CLI_DIR}/expect.sh nonzero "error: --no-frozen-weights describes --decode"
             -- ${TSP_BIN} bench --strategy single --preset tiny --seq-len 64 --no-frozen-weights)
tsp_cli_test(bench_decode_bad ${TSP_CLI_DIR}/expect.sh nonzero "error: --prompt-len, --new-tokens and --kv-layout describe --decode"
             -- ${TSP_BIN} bench --strategy single --preset tiny --prompt-len 40)

# --- tokenizers and datasets ---
tsp_cli_test(dataset_roundtrip_np2 ${TSP_CLI_DIR}/dataset_roundtrip.sh ${TSP_BIN} ${MPIEXEC_EXECUTABLE} 2
             ${TSP_CLI_DIR}/tiny.json ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/recall-task.md)
tsp_cli_test(tokenize_bad_dir ${TSP_CLI_DIR}/expect.sh nonzero "error: .* holds no tokenizer.json or tokenizer.model" --
             ${TSP_BIN} tokenize --tokenizer ${TSP_CLI_DIR} --text hello)
tsp_cli_test(train_dataset_missing ${TSP_CLI_DIR}/expect.sh nonzero "\\[rank 1\\] error: --dataset .*no manifest.json" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train --strategy tsp --preset tiny --dataset ${TSP_CLI_DIR} --steps 1)

# --matmul-precision bf16 (kernels/matmul_precision.h): parallelism adds no error beyond bf16's, judged
# against the single-device fp64 model (vs_fp64), for every layout; skipped where oneDNN has no bf16 product.
function(tsp_bf16_check_test name np)
  tsp_cli_test(${name} ${TSP_CLI_DIR}/expect.sh 0 "\"pass\": true" "\"vs_fp64\"" "\"matmul_precision\": \"bf16\""
               -- ${TSP_MPIEXEC} -np ${np} ${TSP_BIN} check --preset tiny --seq-len 64 --batch 2 --dtype float32
               --matmul-precision bf16 --json ${ARGN})
  set_tests_properties(cli_${name} PROPERTIES SKIP_REGULAR_EXPRESSION "has no bf16 product on this CPU")
endfunction()
tsp_bf16_check_test(check_bf16_single 1 --strategy single)
tsp_bf16_check_test(check_bf16_tsp_np2 2 --strategy tsp)
tsp_bf16_check_test(check_bf16_tp_np2 2 --strategy tp)
tsp_bf16_check_test(check_bf16_sp_np2 2 --strategy sp)
tsp_bf16_check_test(check_bf16_tsp_np4 4 --strategy tsp)
tsp_bf16_check_test(check_bf16_tpsp_2x2 4 --strategy tpsp --tp 2 --sp 2)
# --dtype bf16 (core/precision.h): bf16 weights, saved activations and traffic under every layout at 1-4 ranks
# (data parallelism, Megatron-SP, Qwen2 biases, Qwen3 q/k norms with replicated KV heads, and bf16 moments
# and gradient sums included), each judged by the same rule against the single-device fp64 model. Not
# skipped without a bf16 product: the policy then multiplies in fp32 and the rule still holds.
function(tsp_dtype_bf16_check_test name np)
  tsp_cli_test(${name} ${TSP_CLI_DIR}/expect.sh 0 "\"pass\": true" "\"vs_fp64\"" "\"dtype\": \"bf16\""
               -- ${TSP_MPIEXEC} -np ${np} ${TSP_BIN} check --seq-len 48 --dtype bf16 --json ${ARGN})
endfunction()
tsp_dtype_bf16_check_test(check_dtype_bf16_single 1 --strategy single --preset tiny --batch 2)
tsp_dtype_bf16_check_test(check_dtype_bf16_tsp_np2 2 --strategy tsp --preset tiny --batch 2)
tsp_dtype_bf16_check_test(check_dtype_bf16_tsp_np4 4 --strategy tsp --preset tiny)
tsp_dtype_bf16_check_test(check_dtype_bf16_tp_np2 2 --strategy tp --preset tiny)
tsp_dtype_bf16_check_test(check_dtype_bf16_tp_sp_np4 4 --strategy tp --sequence-parallel --preset tiny)
tsp_dtype_bf16_check_test(check_dtype_bf16_sp_np3 3 --strategy sp --preset tiny)
tsp_dtype_bf16_check_test(check_dtype_bf16_tpsp_2x2 4 --strategy tpsp --tp 2 --sp 2 --sequence-parallel --preset tiny)
tsp_dtype_bf16_check_test(check_dtype_bf16_tsp_dp2_np4 4 --strategy tsp --dp 2 --batch 4 --preset tiny)
tsp_dtype_bf16_check_test(check_dtype_bf16_qwen2_tp_np2 2 --strategy tp --config ${TSP_CLI_DIR}/qwen2_linear.json)
tsp_dtype_bf16_check_test(check_dtype_bf16_qwen3_tsp_np2 2 --strategy tsp --config ${TSP_CLI_DIR}/qwen3_yarn_kv1.json
                          --grad-reduce-dtype bf16)
tsp_dtype_bf16_check_test(check_dtype_bf16_grad16_tsp_np4 4 --strategy tsp --preset tiny --grad-reduce-dtype bf16)
tsp_dtype_bf16_check_test(check_dtype_bf16_grad16_tpsp_2x2 4 --strategy tpsp --tp 2 --sp 2 --preset tiny
                          --grad-reduce-dtype bf16)
# --weight-comm-dtype bf16 (parallel/tsp/ring.h): TSP's weight shards on a bf16 wire, the embedding table
# rounded with them, still within the bf16 rule; refused without bf16 products or on a layout that moves none.
tsp_bf16_check_test(check_bf16_tsp_wire_np2 2 --strategy tsp --weight-comm-dtype bf16)
tsp_bf16_check_test(check_bf16_tsp_wire_np4 4 --strategy tsp --weight-comm-dtype bf16)
tsp_cli_test(weight_comm_needs_bf16_products ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: --weight-comm-dtype bf16 needs --matmul-precision bf16 \\(got fp32\\)" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check --strategy tsp --preset tiny --seq-len 64 --dtype float32
             --weight-comm-dtype bf16)
tsp_cli_test(weight_comm_tsp_only ${TSP_CLI_DIR}/expect.sh 2
             "error: --weight-comm-dtype bf16 narrows the weight shards TSP moves; --strategy single moves no weights"
             -- ${TSP_BIN} check --strategy single --seq-len 16 --dtype float32 --matmul-precision bf16
             --weight-comm-dtype bf16)
set_tests_properties(cli_weight_comm_tsp_only PROPERTIES SKIP_REGULAR_EXPRESSION "has no bf16 product on this CPU")
tsp_cli_test(weight_comm_unknown ${TSP_CLI_DIR}/expect.sh 2 "error: --weight-comm-dtype: fp8 not in \\{float32,bf16\\}"
             -- ${TSP_BIN} check --strategy single --seq-len 16 --weight-comm-dtype fp8)
tsp_cli_test(matmul_precision_needs_float32 ${TSP_CLI_DIR}/expect.sh 2
             "\\[rank 1\\] error: --matmul-precision bf16 needs --dtype float32 or bf16 \\(got --dtype float64\\)" --
             ${TSP_MPIEXEC} -np 2 ${TSP_BIN} check --strategy tsp --preset tiny --seq-len 64 --matmul-precision bf16)
set_tests_properties(cli_matmul_precision_needs_float32 PROPERTIES SKIP_REGULAR_EXPRESSION
                     "has no bf16 product on this CPU")
tsp_cli_test(matmul_paths_needs_auto ${TSP_CLI_DIR}/expect.sh 2
             "error: --matmul-paths paths.json pins the paths of --matmul-precision auto \\(got --matmul-precision fp32\\)"
             -- ${TSP_BIN} check --strategy single --seq-len 16 --matmul-paths paths.json)
tsp_cli_test(matmul_precision_unknown ${TSP_CLI_DIR}/expect.sh 2
             "error: --matmul-precision fp16 is not supported \\(allowed: fp32, bf16, auto\\)" -- ${TSP_BIN} check
             --strategy single --seq-len 16 --matmul-precision fp16)
tsp_cli_test(bench_bf16_products ${TSP_CLI_DIR}/expect.sh 0 "\"matmul_precision\": \"bf16\""
             "\"model_flops_ratio_bf16_gemm\"" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} bench --strategy tsp --preset tiny
             --seq-len 64 --steps 1 --sgemm-n 256 --dtype float32 --matmul-precision bf16 --json)
set_tests_properties(cli_bench_bf16_products PROPERTIES SKIP_REGULAR_EXPRESSION "has no bf16 product on this CPU")
tsp_cli_test(train_bf16_products_tsp_np2 ${TSP_CLI_DIR}/expect.sh 0 "matmul precision bf16"
             "\"matmul_precision\": \"bf16\"" -- ${TSP_MPIEXEC} -np 2 ${TSP_BIN} train --strategy tsp --preset tiny
             --seq-len 128 --steps 3 --matmul-precision bf16 --json)
set_tests_properties(cli_train_bf16_products_tsp_np2 PROPERTIES SKIP_REGULAR_EXPRESSION
                     "has no bf16 product on this CPU")
# scripts/trace_summary (docs/performance.md's step breakdown): timed steps only, the flash kernel and bf16
# rounding spans nested in the blocks' compute spans.
tsp_cli_test(trace_summary_bf16 ${TSP_CLI_DIR}/trace_summary.sh ${TSP_BIN} ${PROJECT_SOURCE_DIR}/scripts/trace_summary)
set_tests_properties(cli_trace_summary_bf16 PROPERTIES SKIP_REGULAR_EXPRESSION "has no bf16 product on this CPU")
# Training with bf16 products tracks fp32: the mean loss of the last 50 of 300 steps within 2 % (the issue's
# bar; docs/performance.md has the same on `small`). Both comparisons run in the Release build only, like
# test_train's learning test: they are numerical checks, and the sanitizer build walks the same bf16 training
# paths for hundreds of steps in cli_preempt_sigterm_tsp_bf16_np2 and cli_preempt_sigterm_tsp_dtype_bf16_np2
# (the latter with these very flags).
if(NOT TSP_SANITIZE)
  tsp_cli_test(train_bf16_loss_tracks_fp32 ${TSP_CLI_DIR}/train_bf16_tracks_fp32.sh ${TSP_BIN} "--matmul-precision bf16"
               --preset tiny --seq-len 128 --batch 2 --steps 300 --seq-len-warmup 0 --eval-batches 1 --no-progress
               --threads 1)
  # The bf16 policy (--dtype bf16) on 2 TSP ranks, with bf16 moments and gradient sums: within 2 % too.
  string(REPLACE ";" " " tsp_mpiexec_words "${TSP_MPIEXEC}")
  tsp_cli_test(train_dtype_bf16_loss_tracks_fp32 ${TSP_CLI_DIR}/train_bf16_tracks_fp32.sh
               "${tsp_mpiexec_words} -np 2 ${TSP_BIN}" "--dtype bf16 --optimizer-dtype bf16 --grad-reduce-dtype bf16"
               --strategy tsp --preset tiny --seq-len 128 --batch 2 --steps 300 --seq-len-warmup 0 --eval-batches 1
               --no-progress --threads 1)
  set_tests_properties(cli_train_bf16_loss_tracks_fp32 PROPERTIES SKIP_REGULAR_EXPRESSION
                       "has no bf16 product on this CPU")
endif()
