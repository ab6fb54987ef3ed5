public enum HerdRLPlaceholder {}
