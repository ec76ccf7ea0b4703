"""Text: ASR, transcripts, punctuation, BERT, word-to-frame alignment."""
