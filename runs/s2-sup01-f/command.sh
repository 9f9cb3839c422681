# stage 2 continued from run E (runs/s2-sup03-e/model, L_Sup 0.3: test BAK 2.83 -> 2.92 and routed PESQ-WB 1.763 ->
# 1.779 against run D) with L_Sup lowered again, to 0.1; one process (the other core packages and tests), 64 segments
# an update (8 x 8 accumulated), a cosine over 60 updates from 1.5e-4; resume after an interruption by adding
# --resume_from_checkpoint latest
python scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup03-e/model --model suppression_weight=0.1 --target_utilization 0.25 \
  --learning_rate 1.5e-4 --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 \
  --narrow_factors_per_step 1 --gradient_accumulation_steps 8 --max_train_steps 60 --gumbel_noise_decay_steps 45 \
  --validation_steps 30 --checkpointing_steps 5 --max_valid_items 120 --seed 37 --output_dir /work/main/runs/s2-sup01-f "$@"
