# stage 1 from run I (runs/s2-sup01-i/model) on both cores, with L_Voice beside run I's loss: every run since L_PESQ
# (weight 0.1) kept less of the clean speech's top bands (full width, clean speech in: 4-8 kHz energy 0.73 before,
# 0.12 at run I), and a weaker L_PESQ (runs K, L) gave back PESQ-WB with the voice. L_Voice weighs the speech's
# deficit in every frequency bin alike, so the weak 2-8 kHz bins count as much as the low ones; on 12 validation
# clips, full width, it reads 0.047 (s1-slim-t2, voice kept), 0.077 (K), 0.114 (I): at weight 1 the step from t2
# to I costs about what L_PESQ x 0.1 gains over it (0.069). L_PESQ 0.1 and L_Sup 0.1 as run I; no routed call;
# a cosine over 260 updates from 2e-4, 64 segments an update (2 processes x 8 x 4 accumulated). The router is
# refitted afterwards (runs/s2-router-m). Resume after an interruption by adding --resume_from_checkpoint latest
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-i/model --model voice_weight=1.0 \
  --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 4 --gain_learning_rate 6.7e-2 \
  --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 --gradient_accumulation_steps 4 \
  --max_train_steps 260 --validation_steps 130 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 53 --output_dir /work/main/runs/s1-m "$@"
