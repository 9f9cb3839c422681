# stage 1 from run I (runs/s2-sup01-i/model) on both cores with both of this session's levers at once, L_Voice at a
# quarter of run M's weight (0.25) and a tenth of the segments clean (--clean_probability 0.1). Run M (L_Voice x 1)
# kept the voice and let the noise through (validation BAK -0.7); run N (clean segments alone, stopped at update 64)
# changed nothing, neither PESQ-WB (validation -0.005 to -0.011) nor the voice (4-8 kHz energy, clean in, 0.13
# against 0.12): the clean segments' gradient on the upper bands is too weak without a term that sees them. Here
# L_Voice is the term, and the clean segments are where it can keep the voice without keeping noise.
# A cosine over 100 updates from 2e-4, 64 segments an update (2 processes x 8 x 4 accumulated).
# Resume after an interruption by adding --resume_from_checkpoint latest
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-i/model --model voice_weight=0.25 --clean_probability 0.1 \
  --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 4 --gain_learning_rate 6.7e-2 \
  --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 --gradient_accumulation_steps 4 \
  --max_train_steps 100 --validation_steps 50 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 71 --output_dir /work/main/runs/s1-o "$@"
