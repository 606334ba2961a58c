from .mix_token import MixToken, reverse_mix_token
from .mix_token_data_preprocessor import MixTokenDataPreprocessor

__all__ = ['MixToken', 'MixTokenDataPreprocessor', 'reverse_mix_token']
