# stage 2 continued from run F (runs/s2-sup01-f/model, L_Sup 0.1: validation statics +0.006..+0.013 over run E,
# routed equal) with the same loss and a longer cosine: 100 updates from 1.5e-4; one process (the other core
# evaluates and tests), 64 segments an update (8 x 8 accumulated); resume after an interruption by adding
# --resume_from_checkpoint latest
python scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-f/model --model suppression_weight=0.1 --target_utilization 0.25 \
  --learning_rate 1.5e-4 --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 \
  --narrow_factors_per_step 1 --gradient_accumulation_steps 8 --max_train_steps 100 --gumbel_noise_decay_steps 75 \
  --validation_steps 50 --checkpointing_steps 5 --max_valid_items 120 --seed 41 --output_dir /work/main/runs/s2-sup01-g "$@"
