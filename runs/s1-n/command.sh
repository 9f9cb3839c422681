# stage 1 from run I (runs/s2-sup01-i/model) on both cores with a tenth of the training segments left without
# noise (--clean_probability 0.1: the input is the clean speech itself, the target the same), run I's loss
# unchanged: fed clean speech, run I takes 11 dB off the voice's 4-8 kHz band at every SNR, as if every input were
# noisy; L_Voice x 1 (runs/s1-m, stopped at update 150) kept the voice but let the noise through at every input
# (validation BAK -0.7). This asks the model to keep the voice only where there is no noise to take out.
# A cosine over 120 updates from 2e-4, 64 segments an update (2 processes x 8 x 4 accumulated); the router is
# refitted afterwards. Resume after an interruption by adding --resume_from_checkpoint latest
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-i/model --clean_probability 0.1 \
  --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 4 --gain_learning_rate 6.7e-2 \
  --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 --gradient_accumulation_steps 4 \
  --max_train_steps 120 --validation_steps 60 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 61 --output_dir /work/main/runs/s1-n "$@"
