"""An app's own pricing, named by ``CREDITS_PRICING=support.custom_pricing:PRICING``."""

from credits.pricing import PricingEngine, PricingRule

# video at 4 credits a second instead of the default 10; a new action priced per page
PRICING = PricingEngine(
    {
        "video_generation": PricingRule(rate=4, unit="second"),
        "document_ocr": PricingRule(rate=3, unit="page"),
    }
)
