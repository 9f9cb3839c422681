# probe beside run G: stage 2 from run F (runs/s2-sup01-f/model) with L_Sup off (0; run F had 0.1: its test BAK
# rose 2.918 -> 2.995 over run E's 0.3, statics +0.006..+0.014, SI-SDR -0.1 dB), a cosine over 45 updates from
# 1.5e-4; one process, 64 segments an update (8 x 8 accumulated); resume with --resume_from_checkpoint latest
python scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-f/model --model suppression_weight=0.0 --target_utilization 0.25 \
  --learning_rate 1.5e-4 --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 \
  --narrow_factors_per_step 1 --gradient_accumulation_steps 8 --max_train_steps 45 --gumbel_noise_decay_steps 34 \
  --validation_steps 0 --checkpointing_steps 5 --max_valid_items 120 --seed 43 --output_dir /work/main/runs/s2-sup0-h "$@"
