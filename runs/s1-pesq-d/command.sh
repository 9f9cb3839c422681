# stage 1 from runs/s1-slim-t2/model with L_PESQ (torch-pesq) at weight 0.3 beside run U's recipe (runs/s1-slim-u, the
# control: the same start, loss and rate, flat within 0.02 over 80 updates); one process of one thread, bf16, batch 64 (stopped by hand after update 83, for the session's end; its update-80 weights in update80/)
python scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s1-slim-t2/model \
  --model compressed_weight=1.0 stft_mag_factor=0.0 suppression_weight=1.0 slim_bottleneck=true pesq_weight=0.3 \
  --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 \
  --gradient_accumulation_steps 8 --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 10 \
  --max_train_steps 160 --validation_steps 40 --checkpointing_steps 10 --max_valid_items 120 --final_model last \
  --seed 29 --output_dir /work/main/runs/s1-pesq-d
