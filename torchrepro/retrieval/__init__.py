"""Retrieval: embedding search and ranking metrics shared by VPR, re-ID and kNN evaluation."""
