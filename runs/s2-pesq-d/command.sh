# stage 2 continued from the packaged default of the evening of 2026-12-07 (runs/s2-pesq-c/model), the same recipe
# (target 0.25, stage-1 terms beside the router), a new cosine over 60 updates from 1.5e-4: what the last 45 minutes
# of session 22 could hold; resume after an interruption by adding --resume_from_checkpoint latest
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-pesq-c/model --target_utilization 0.25 --learning_rate 1.5e-4 \
  --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 \
  --gradient_accumulation_steps 4 --max_train_steps 60 --gumbel_noise_decay_steps 45 --validation_steps 30 \
  --checkpointing_steps 5 --max_valid_items 120 --seed 35 --output_dir /work/main/runs/s2-pesq-d "$@"
