"""IAM setup help: the documents a customer's cloud admin creates so byollm's runs can use Bedrock."""
