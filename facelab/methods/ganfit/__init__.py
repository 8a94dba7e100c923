"""GANFit (Gecer et al. 2019): a texture GAN as the albedo model of analysis-by-synthesis fitting."""
