# stage 1 from run I (runs/s2-sup01-i/model) on both cores: every width's own term at full weight and no routed call
# (a third less compute per update than stage 2, whose widths' terms weigh 0.25 beside the routed term); the same
# loss (L_Cmp, L_PESQ 0.1, L_Sup 0.1), a cosine over 240 updates from 2e-4, 64 segments an update (2 processes x 8 x 4
# accumulated). The router is refitted afterwards (runs/s2-router-j). Resume by adding --resume_from_checkpoint latest
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-i/model --model suppression_weight=0.1 \
  --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 4 --gain_learning_rate 6.7e-2 \
  --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 --gradient_accumulation_steps 4 \
  --max_train_steps 240 --validation_steps 0 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 47 --output_dir /work/main/runs/s1-j "$@"
