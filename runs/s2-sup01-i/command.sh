# stage 2 continued from run G (runs/s2-sup01-g/model, the packaged default of 2026-12-07) with the same loss
# (L_Sup 0.1) on both cores: a new cosine over 200 updates from 1.5e-4, 64 segments an update (2 processes x 8 x 4
# accumulated); resume after an interruption by adding --resume_from_checkpoint latest
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-g/model --model suppression_weight=0.1 --target_utilization 0.25 \
  --learning_rate 1.5e-4 --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 \
  --narrow_factors_per_step 1 --gradient_accumulation_steps 4 --max_train_steps 200 --gumbel_noise_decay_steps 150 \
  --validation_steps 100 --checkpointing_steps 5 --max_valid_items 120 --seed 43 --output_dir /work/main/runs/s2-sup01-i "$@"
