"""SuperPoint (DeTone, Malisiewicz, Rabinovich, CVPRW 2018): synthetic shapes → MagicPoint → homographic
adaptation → joint detector + descriptor training → HPatches-protocol evaluation."""
