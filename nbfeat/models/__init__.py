"""Model sources (timm, torchvision, Hugging Face), the alias table and the Backbone object."""
